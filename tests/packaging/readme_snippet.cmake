# recblocks_read_fenced_block(<text> <language> <out_var>)
#   The body of the first ```<language> block of <text> (FATAL_ERROR if none).
#
# recblocks_write_readme_snippet(<README.md> <out.cpp>)
#
# Writes the README's first ```cpp block as a program: its #include and
# `namespace x = y;` lines stay at file scope, every other line goes into
# main(). The packaging tests build that file, so the snippet a new user
# copies first is the code that is compiled and run.
function(recblocks_read_fenced_block text language out_var)
    set(_fence "```${language}\n")
    string(FIND "${text}" "${_fence}" _begin)
    if(_begin EQUAL -1)
        message(FATAL_ERROR "no ```${language} block found")
    endif()
    string(LENGTH "${_fence}" _fence_length)
    math(EXPR _begin "${_begin} + ${_fence_length}")
    string(SUBSTRING "${text}" ${_begin} -1 _rest)
    string(FIND "${_rest}" "```" _end)
    string(SUBSTRING "${_rest}" 0 ${_end} _block)
    set(${out_var} "${_block}" PARENT_SCOPE)
endfunction()

function(recblocks_write_readme_snippet readme out)
    file(READ "${readme}" _text)
    recblocks_read_fenced_block("${_text}" cpp _block)
    string(REPLACE ";" "\\;" _block "${_block}")
    string(REPLACE "\n" ";" _lines "${_block}")
    set(_preamble "// Generated from the first ```cpp block of README.md by tests/packaging/readme_snippet.cmake\n")
    set(_body "")
    foreach(_line IN LISTS _lines)
        if(_line MATCHES "^#include" OR _line MATCHES "^namespace [A-Za-z_]+ = ")
            string(APPEND _preamble "${_line}\n")
        else()
            string(APPEND _body "    ${_line}\n")
        endif()
    endforeach()
    file(WRITE "${out}" "${_preamble}\nint main() {\n${_body}}\n")
endfunction()
