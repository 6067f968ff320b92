# Installing as a service and the deb/rpm packages (CPack).
#
# Install rules (also for a plain `cmake --install`): the configuration (its plugin_dir
# rewritten to the real plugin folder), the systemd unit, the flowrelayd(8) man page and the
# license files. Packages, one per install component:
#   runtime -> flowrelay             flowrelayd, plugins, config, unit, man page
#   dev     -> flowrelay-dev (deb) / flowrelay-devel (rpm)   SDK headers, CMake and pkg-config
#                                                            files, example plugin sources
# Packages are built from a tree configured for /usr:
#   cmake -S . -B build-deb -DCMAKE_INSTALL_PREFIX=/usr -DFLOWRELAY_BUILD_TESTS=OFF \
#         -DFLOWRELAY_BUILD_BENCH=OFF
#   cmake --build build-deb --target package
# and the rpm from a second tree with -DCMAKE_INSTALL_LIBDIR=lib64 (the format follows).

set(_pkg ${CMAKE_CURRENT_LIST_DIR})

if(CMAKE_INSTALL_LIBDIR STREQUAL "lib64")
  set(_format RPM)
else()
  set(_format DEB)
endif()
set(FLOWRELAY_PACKAGE_FORMAT ${_format} CACHE STRING
    "Package built by the 'package' target: DEB or RPM (RPM when CMAKE_INSTALL_LIBDIR is lib64)")
set_property(CACHE FLOWRELAY_PACKAGE_FORMAT PROPERTY STRINGS DEB RPM)
if(NOT FLOWRELAY_PACKAGE_FORMAT MATCHES "^(DEB|RPM)$")
  message(FATAL_ERROR "FLOWRELAY_PACKAGE_FORMAT must be DEB or RPM, not '${FLOWRELAY_PACKAGE_FORMAT}'")
endif()

# systemd looks for units only under / and /usr. Other prefixes (/usr/local, /opt/...) get the
# unit under the prefix, to be linked or copied by hand.
if(FLOWRELAY_PACKAGE_FORMAT STREQUAL "RPM")
  set(_unitdir /usr/lib/systemd/system)  # %{_unitdir} on every rpm distribution
else()
  pkg_get_variable(_unitdir systemd systemdsystemunitdir)  # Debian 12: /lib/systemd/system
  if(NOT _unitdir)
    set(_unitdir /lib/systemd/system)
  endif()
endif()
if(NOT CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(_unitdir lib/systemd/system)
endif()
set(FLOWRELAY_SYSTEMD_UNIT_DIR ${_unitdir} CACHE STRING "Where flowrelay.service is installed")

set(_plugin_dir ${FLOWRELAY_PLUGIN_INSTALL_DIR})
if(NOT IS_ABSOLUTE "${_plugin_dir}")
  set(_plugin_dir ${CMAKE_INSTALL_PREFIX}/${_plugin_dir})
endif()
set(_config_dir ${CMAKE_INSTALL_FULL_SYSCONFDIR}/flowrelay)
set(_config ${_config_dir}/flowrelay.yaml)
set(_daemon ${CMAKE_INSTALL_FULL_SBINDIR}/flowrelayd)

# Text files whose packaged paths (/usr/sbin, /etc/flowrelay, the plugin folder) are written
# as literals in the source: swap in this tree's paths. A literal that is not found is an
# error, so an edit of the source cannot silently ship a wrong path.
function(_flowrelay_rewrite in out)
  file(READ ${in} text)
  set(pairs ${ARGN})
  while(pairs)
    list(POP_FRONT pairs from to)
    string(FIND "${text}" "${from}" at)
    if(at EQUAL -1)
      message(FATAL_ERROR "${in}: expected to find '${from}' to rewrite")
    endif()
    string(REPLACE "${from}" "${to}" text "${text}")
  endwhile()
  file(WRITE ${out}.tmp "${text}")
  configure_file(${out}.tmp ${out} COPYONLY)  # touches ${out} only when it changes
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${in})
endfunction()

set(_out ${CMAKE_BINARY_DIR}/packaging)
_flowrelay_rewrite(${CMAKE_SOURCE_DIR}/etc/flowrelay.yaml ${_out}/flowrelay.yaml
  "\nplugin_dir: /usr/lib/flowrelay/plugins\n" "\nplugin_dir: ${_plugin_dir}\n"
  "(/etc/flowrelay/flowrelay.yaml)" "(${_config})"
  "--config /etc/flowrelay/flowrelay.yaml" "--config ${_config}")
_flowrelay_rewrite(${_pkg}/systemd/flowrelay.service ${_out}/flowrelay.service
  "/usr/sbin/flowrelayd" "${_daemon}"
  "/etc/flowrelay/flowrelay.yaml" "${_config}")

install(FILES ${_out}/flowrelay.yaml DESTINATION ${_config_dir} COMPONENT runtime)
install(FILES ${_out}/flowrelay.service DESTINATION ${FLOWRELAY_SYSTEMD_UNIT_DIR}
  COMPONENT runtime)

# Man pages are shipped gzipped (-n: no name or timestamp, so the build is reproducible).
find_program(FLOWRELAY_GZIP gzip REQUIRED)
add_custom_command(OUTPUT ${_out}/flowrelayd.8.gz
  COMMAND ${CMAKE_COMMAND} -E copy ${_pkg}/flowrelayd.8 ${_out}/flowrelayd.8
  COMMAND ${FLOWRELAY_GZIP} -9nf ${_out}/flowrelayd.8
  DEPENDS ${_pkg}/flowrelayd.8
  COMMENT "Compressing the flowrelayd(8) man page"
  VERBATIM)
add_custom_target(flowrelay_manpage ALL DEPENDS ${_out}/flowrelayd.8.gz)
install(FILES ${_out}/flowrelayd.8.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man8 COMPONENT runtime)

# License files where each distribution looks for them: Debian's machine-readable copyright
# and a changelog in /usr/share/doc/<package>/; the plain LICENSE in /usr/share/licenses/<package>/
# on rpm systems.
set(FLOWRELAY_DEB_RELEASE 1)
set(FLOWRELAY_DEB_VERSION ${PROJECT_VERSION}-${FLOWRELAY_DEB_RELEASE})
if(FLOWRELAY_PACKAGE_FORMAT STREQUAL "DEB")
  configure_file(${_pkg}/debian/changelog.in ${_out}/changelog.Debian @ONLY)
  add_custom_command(OUTPUT ${_out}/changelog.Debian.gz
    COMMAND ${FLOWRELAY_GZIP} -9nkf ${_out}/changelog.Debian
    DEPENDS ${_out}/changelog.Debian
    VERBATIM)
  add_custom_target(flowrelay_changelog ALL DEPENDS ${_out}/changelog.Debian.gz)
  foreach(pair runtime:flowrelay dev:flowrelay-dev)
    string(REPLACE ":" ";" pair ${pair})
    list(GET pair 0 component)
    list(GET pair 1 package)
    install(FILES ${_pkg}/debian/copyright ${_out}/changelog.Debian.gz
      DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/${package} COMPONENT ${component})
  endforeach()
else()
  install(FILES ${CMAKE_SOURCE_DIR}/LICENSE
    DESTINATION ${CMAKE_INSTALL_DATADIR}/licenses/flowrelay COMPONENT runtime)
  install(FILES ${CMAKE_SOURCE_DIR}/LICENSE
    DESTINATION ${CMAKE_INSTALL_DATADIR}/licenses/flowrelay-devel COMPONENT dev)
endif()

include(${_pkg}/CPackSettings.cmake)

add_subdirectory(${CMAKE_SOURCE_DIR}/tests/packaging ${CMAKE_BINARY_DIR}/tests/packaging)
