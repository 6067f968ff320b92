# flowrelay_add_plugin(<name> SOURCES ... [LIBS ...])
# Builds plugin <name> (e.g. broker-local) as flowrelay-<name>.so into the shared build plugin
# folder, hidden visibility so only the entry symbol is exported, and installs it.
function(flowrelay_add_plugin name)
  cmake_parse_arguments(P "" "" "SOURCES;LIBS" ${ARGN})
  set(target flowrelay-${name})
  add_library(${target} MODULE ${P_SOURCES})
  set_target_properties(${target} PROPERTIES
    PREFIX ""
    C_VISIBILITY_PRESET hidden
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    LIBRARY_OUTPUT_DIRECTORY ${FLOWRELAY_PLUGIN_BUILD_DIR})
  target_link_libraries(${target} PRIVATE flowrelay::sdk ${P_LIBS})
  target_include_directories(${target} PRIVATE ${CMAKE_SOURCE_DIR}/plugins/common)
  target_compile_options(${target} PRIVATE -Wall -Wextra)
  target_compile_definitions(${target} PRIVATE FLOWRELAY_PLUGIN_VERSION="${PROJECT_VERSION}")
  # Only the entry symbol is exported (visibility alone leaves libstdc++'s weak template
  # instances and STB_GNU_UNIQUE objects global).
  target_link_options(${target} PRIVATE
    -Wl,--version-script=${CMAKE_SOURCE_DIR}/cmake/plugin_exports.map)
  set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS
    ${CMAKE_SOURCE_DIR}/cmake/plugin_exports.map)
  # Unresolved symbols must fail at link time, not at dlopen in production.
  if(NOT FLOWRELAY_SANITIZE)
    target_link_options(${target} PRIVATE -Wl,--no-undefined)
  endif()
  install(TARGETS ${target} LIBRARY DESTINATION ${FLOWRELAY_PLUGIN_INSTALL_DIR} COMPONENT runtime)
endfunction()
