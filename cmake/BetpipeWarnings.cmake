# The warning set of STYLE.md, applied to every target through bp_target_warnings().
set(BP_WARNING_FLAGS
    -Wall -Wextra -Wpedantic -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes
    -Wmissing-declarations -Wold-style-definition -Wcast-qual -Wpointer-arith -Wwrite-strings
    -Wundef -Wvla -Wnull-dereference -Wdouble-promotion -Wconversion
    -Werror=implicit-function-declaration -Werror=incompatible-pointer-types
    -Werror=int-conversion -Werror=return-type)

function(bp_target_warnings target)
    target_compile_options(${target} PRIVATE ${BP_WARNING_FLAGS})
    if(BP_WERROR)
        target_compile_options(${target} PRIVATE -Werror)
    endif()
    target_compile_definitions(${target} PRIVATE _POSIX_C_SOURCE=200809L)
endfunction()
