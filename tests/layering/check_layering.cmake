# Checks the folder-level include graph of include/recblocks/ against the
# "Layering" section of docs/design.md (the one place the rules are written).
#
#   cmake -DSOURCE_DIR=<repository root> -P tests/layering/check_layering.cmake
#
# A header belongs to the longest folder (or top-level file) of the rules table
# that contains it: include/recblocks/backend/cpu/kernels/gemm.hpp belongs to
# `backend/cpu` if the table has that row, else to `backend`. An include of
# "recblocks/<path>" is allowed when both ends belong to the same folder, when
# the including folder's row lists the included folder (`*` = anything), or
# when the exceptions table lists that exact file and include. It also fails on
# a cycle in the table (dependencies must point down), on a row other than
# backend's that lists backend/cpu or backend/cuda, and on an exception that no
# longer matches any include (delete it). Plain CMake: CI has no Python.
cmake_minimum_required(VERSION 3.25)

if(NOT SOURCE_DIR)
    message(FATAL_ERROR "check_layering.cmake: pass -DSOURCE_DIR=<repository root>")
endif()
set(_design "${SOURCE_DIR}/docs/design.md")
set(_include_root "${SOURCE_DIR}/include/recblocks")
file(READ "${_design}" _design_text)

# Makes text safe to split into a CMake list of lines: ';', '\', '[' and ']'
# have list meanings, and none of them matters to the rules.
function(_layering_lines text out)
    string(REPLACE "\\" "/" text "${text}")
    string(REPLACE ";" "," text "${text}")
    string(REPLACE "[" "(" text "${text}")
    string(REPLACE "]" ")" text "${text}")
    string(REPLACE "\n" ";" text "${text}")
    set(${out} "${text}" PARENT_SCOPE)
endfunction()

# The lines between <!-- layering:NAME begin --> and <!-- layering:NAME end -->.
function(_layering_section name out)
    set(_begin_marker "<!-- layering:${name} begin -->")
    set(_end_marker "<!-- layering:${name} end -->")
    string(FIND "${_design_text}" "${_begin_marker}" _b)
    string(FIND "${_design_text}" "${_end_marker}" _e)
    if(_b EQUAL -1 OR _e EQUAL -1 OR _e LESS _b)
        message(FATAL_ERROR "docs/design.md: no '${_begin_marker}' ... '${_end_marker}' section "
                            "(the layering rules are read from there)")
    endif()
    string(LENGTH "${_begin_marker}" _len)
    math(EXPR _b "${_b} + ${_len}")
    math(EXPR _len "${_e} - ${_b}")
    string(SUBSTRING "${_design_text}" ${_b} ${_len} _text)
    _layering_lines("${_text}" _lines)
    set(${out} "${_lines}" PARENT_SCOPE)
endfunction()

# The backticked words of a table cell, without the backticks.
function(_layering_names cell out)
    string(REGEX MATCHALL "`[^`]+`" _quoted "${cell}")
    set(_names "")
    foreach(_q IN LISTS _quoted)
        string(REGEX REPLACE "^`(.*)`$" "\\1" _q "${_q}")
        list(APPEND _names "${_q}")
    endforeach()
    set(${out} "${_names}" PARENT_SCOPE)
endfunction()

# --- the rules table: | `folder` | `allowed`, `allowed`, ... | why |
_layering_section(rules _rule_lines)
set(_units "")
foreach(_line IN LISTS _rule_lines)
    if(_line MATCHES "^\\| *`([^`]+)` *\\|([^|]*)\\|")
        set(_unit "${CMAKE_MATCH_1}")
        _layering_names("${CMAKE_MATCH_2}" _allowed)
        if(_unit IN_LIST _units)
            message(FATAL_ERROR "docs/design.md, Layering: `${_unit}` has two rows")
        endif()
        list(APPEND _units "${_unit}")
        set("_allow_${_unit}" "${_allowed}")
    endif()
endforeach()
if(NOT _units)
    message(FATAL_ERROR "docs/design.md, Layering: the rules table has no rows")
endif()

# --- the exceptions table: | `file` | `include` | why |
_layering_section(exceptions _exception_lines)
set(_exceptions "")
foreach(_line IN LISTS _exception_lines)
    if(_line MATCHES "^\\| *`([^`]+)` *\\| *`([^`]+)` *\\|")
        list(APPEND _exceptions "${CMAKE_MATCH_1} -> ${CMAKE_MATCH_2}")
    endif()
endforeach()

set(_failures "")
# Records one problem; the arguments are concatenated into one message.
function(_layering_fail)
    string(CONCAT _message ${ARGN})
    list(APPEND _failures "${_message}")
    set(_failures "${_failures}" PARENT_SCOPE)
endfunction()

# --- the table itself: listed folders exist as rows; only backend/ reaches into
# backend/cpu and backend/cuda; no cycles.
foreach(_unit IN LISTS _units)
    foreach(_to IN LISTS "_allow_${_unit}")
        if(NOT _to STREQUAL "*" AND NOT _to IN_LIST _units)
            _layering_fail("docs/design.md, Layering: `${_unit}` may include `${_to}`, which has no row of its own")
        endif()
        if(_to MATCHES "^backend/(cpu|cuda)$" AND NOT _unit MATCHES "^backend(/|$)")
            _layering_fail("docs/design.md, Layering: `${_unit}` lists `${_to}`, but only backend/ (and the umbrella "
                                  "recblocks.hpp, `*`) may include backend/cpu or backend/cuda (add a temporary exception instead)")
        endif()
    endforeach()
endforeach()
set(_remaining "${_units}")
set(_progress TRUE)
while(_remaining AND _progress)
    set(_progress FALSE)
    foreach(_unit IN LISTS _remaining)
        set(_ready TRUE)
        foreach(_to IN LISTS "_allow_${_unit}")
            if(NOT _to STREQUAL _unit AND NOT _to STREQUAL "*" AND _to IN_LIST _remaining)
                set(_ready FALSE)
            endif()
        endforeach()
        if(_ready)
            list(REMOVE_ITEM _remaining "${_unit}")
            set(_progress TRUE)
        endif()
    endforeach()
endwhile()
if(_remaining)
    # Every remaining row lists another remaining row: walk those edges until a
    # row repeats, and report that loop.
    list(GET _remaining 0 _at)
    set(_path "")
    while(NOT _at IN_LIST _path)
        list(APPEND _path "${_at}")
        foreach(_to IN LISTS "_allow_${_at}")
            if(NOT _to STREQUAL _at AND _to IN_LIST _remaining)
                set(_at "${_to}")
                break()
            endif()
        endforeach()
    endwhile()
    list(FIND _path "${_at}" _start)
    list(SUBLIST _path ${_start} -1 _loop)
    list(APPEND _loop "${_at}")
    list(JOIN _loop " -> " _cycle)
    _layering_fail("docs/design.md, Layering: the rules have a cycle, ${_cycle} (dependencies must point down)")
endif()

# The folder (row) a path under include/recblocks/ belongs to: the longest match.
function(_layering_unit path out)
    set(_best "")
    foreach(_unit IN LISTS _units)
        string(LENGTH "${_unit}" _len)
        string(LENGTH "${_best}" _best_len)
        if(_len GREATER _best_len AND (path STREQUAL _unit OR path MATCHES "^${_unit}/"))
            set(_best "${_unit}")
        endif()
    endforeach()
    set(${out} "${_best}" PARENT_SCOPE)
endfunction()

# --- the include graph
file(GLOB_RECURSE _headers RELATIVE "${_include_root}" "${_include_root}/*.hpp" "${_include_root}/*.h"
     "${_include_root}/*.cuh")
list(SORT _headers)
set(_used_exceptions "")
set(_edges 0)
foreach(_file IN LISTS _headers)
    _layering_unit("${_file}" _from)
    if(_from STREQUAL "")
        _layering_fail("include/recblocks/${_file}: its folder has no row in docs/design.md, Layering (add one)")
        continue()
    endif()
    file(READ "${_include_root}/${_file}" _content)
    _layering_lines("${_content}" _lines)
    set(_line_no 0)
    foreach(_line IN LISTS _lines)
        math(EXPR _line_no "${_line_no} + 1")
        if(NOT _line MATCHES "^[ \t]*#[ \t]*include[ \t]*[<\"]recblocks/([^\">]+)[\">]")
            continue()
        endif()
        set(_target "${CMAKE_MATCH_1}")
        math(EXPR _edges "${_edges} + 1")
        _layering_unit("${_target}" _to)
        if(_to STREQUAL "")
            _layering_fail("include/recblocks/${_file}:${_line_no}: includes recblocks/${_target}, whose folder has no "
                                  "row in docs/design.md, Layering")
            continue()
        endif()
        if(_to STREQUAL _from OR "*" IN_LIST "_allow_${_from}" OR _to IN_LIST "_allow_${_from}")
            continue()
        endif()
        set(_pair "${_file} -> ${_target}")
        if(_pair IN_LIST _exceptions)
            list(APPEND _used_exceptions "${_pair}")
            continue()
        endif()
        list(JOIN "_allow_${_from}" ", " _allowed_text)
        if(_allowed_text STREQUAL "")
            set(_allowed_text "nothing outside itself")
        endif()
        _layering_fail("include/recblocks/${_file}:${_line_no}: '#include \"recblocks/${_target}\"' breaks the rule "
                              "`${_from}` may include only ${_allowed_text}, not `${_to}` "
                              "(docs/design.md, Layering)")
    endforeach()
endforeach()

foreach(_pair IN LISTS _exceptions)
    if(NOT _pair IN_LIST _used_exceptions)
        _layering_fail("docs/design.md, Layering: the exception '${_pair}' matches no include any more (delete its row)")
    endif()
endforeach()

list(LENGTH _headers _n_headers)
list(LENGTH _units _n_units)
list(LENGTH _exceptions _n_exceptions)
if(_failures)
    list(LENGTH _failures _n_failures)
    list(JOIN _failures "\n  " _text)
    message(FATAL_ERROR "layering: ${_n_failures} problem(s):\n  ${_text}\n")
endif()
message(STATUS "layering: ${_edges} includes in ${_n_headers} headers follow the ${_n_units} rules of docs/design.md "
               "(${_n_exceptions} temporary exception(s))")
