# flowrelay_sdk_add_plugin(<name> SOURCES <src>... [LIBS <lib>...] [ALLOW_UNDEFINED])
#
# Builds the plugin <name> (e.g. broker-mine) as the MODULE target flowrelay-<name>, file
# flowrelay-<name>.so, the name the daemon resolves for `plugin: <name>`. Hidden visibility:
# only what FLOWRELAY_EXPORT marks (flowrelay_plugin_entry_v2) is exported. Undefined symbols
# fail at link time rather than at dlopen, unless ALLOW_UNDEFINED is given (e.g. for sanitizer
# runtimes that are preloaded). Installing the result is left to the caller.
include_guard(GLOBAL)

function(flowrelay_sdk_add_plugin name)
  cmake_parse_arguments(P "ALLOW_UNDEFINED" "" "SOURCES;LIBS" ${ARGN})
  if(NOT P_SOURCES)
    message(FATAL_ERROR "flowrelay_sdk_add_plugin(${name}): SOURCES is required")
  endif()
  if(P_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR
      "flowrelay_sdk_add_plugin(${name}): unknown arguments: ${P_UNPARSED_ARGUMENTS}")
  endif()
  set(target flowrelay-${name})
  add_library(${target} MODULE ${P_SOURCES})
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    SUFFIX ".so"
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  target_link_libraries(${target} PRIVATE FlowRelaySDK::sdk ${P_LIBS})
  if(NOT P_ALLOW_UNDEFINED AND CMAKE_SYSTEM_NAME STREQUAL "Linux")
    target_link_options(${target} PRIVATE -Wl,--no-undefined)
  endif()
endfunction()
