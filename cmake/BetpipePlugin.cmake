# bp_add_plugin(KIND job|model|collector|notifier NAME <name> SOURCES ... [LIBS ...] [TEST_ONLY])
#
# Builds one MODULE library <kind>-<name>.so. Hidden visibility keeps every symbol but
# bp_plugin_entry private; -z defs proves the plugin needs nothing from the daemon's symbol table
# (plugins reach the core only through the bp_host table); --exclude-libs keeps static archives'
# symbols out of the dynamic table.
function(bp_add_plugin)
    cmake_parse_arguments(P "TEST_ONLY" "KIND;NAME" "SOURCES;LIBS" ${ARGN})
    if(NOT P_KIND OR NOT P_NAME OR NOT P_SOURCES)
        message(FATAL_ERROR "bp_add_plugin: KIND, NAME and SOURCES are required")
    endif()
    set(target ${P_KIND}-${P_NAME})
    add_library(${target} MODULE ${P_SOURCES})
    set_target_properties(${target} PROPERTIES PREFIX "" OUTPUT_NAME ${target}
        C_VISIBILITY_PRESET hidden)
    if(P_TEST_ONLY)
        set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${BP_TEST_PLUGIN_OUTPUT_DIR})
    else()
        set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${BP_PLUGIN_OUTPUT_DIR})
        install(TARGETS ${target} LIBRARY DESTINATION lib/betpipe/plugins)
        set_property(GLOBAL APPEND PROPERTY BP_SHIPPED_PLUGINS ${target})
    endif()
    target_include_directories(${target} PRIVATE ${CMAKE_SOURCE_DIR}/core/include)
    target_link_libraries(${target} PRIVATE PkgConfig::JANSSON ${P_LIBS})
    if(NOT BP_SANITIZE)
        target_link_options(${target} PRIVATE -Wl,-z,defs)
    endif()
    target_link_options(${target} PRIVATE -Wl,--exclude-libs,ALL)
    bp_target_warnings(${target})
endfunction()
