# BP_SANITIZE=address,undefined (or thread) instruments the core, the plugins and the tests alike:
# the sanitizer runtime must live in the executable that loads the plugins.
if(BP_SANITIZE)
    set(BP_SAN_FLAGS -fsanitize=${BP_SANITIZE} -fno-sanitize-recover=all -fno-omit-frame-pointer -g)
    add_compile_options(${BP_SAN_FLAGS})
    add_link_options(-fsanitize=${BP_SANITIZE})
    add_compile_definitions(BP_SANITIZED=1)
endif()
