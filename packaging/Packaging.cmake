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
# and the rpm from a second tree with -DCMAKE_INSTALL_LIBDIR=lib64 (the format follows) and
# -DCMAKE_INSTALL_SO_NO_EXE=0 (rpm distributions ship shared objects 0755; CMake on Debian
# would install them 0644, before this file could say otherwise). The commands, and what the
# packages do on install, are in README.md ("Install as a service"); tests/packaging checks it all.

set(_pkg ${CMAKE_CURRENT_LIST_DIR})

# Both follow the tree's prefix and library layout unless set (empty = automatic), so that a
# reconfigure with another prefix or libdir does not keep a stale choice.
set(FLOWRELAY_PACKAGE_FORMAT "" CACHE STRING
    "Package built by the 'package' target: DEB or RPM; empty: RPM when CMAKE_INSTALL_LIBDIR is lib64")
set(FLOWRELAY_SYSTEMD_UNIT_DIR "" CACHE STRING
    "Where flowrelay.service is installed; empty: the distribution's folder for /usr")
set(_format ${FLOWRELAY_PACKAGE_FORMAT})
if(NOT _format)
  if(CMAKE_INSTALL_LIBDIR STREQUAL "lib64")
    set(_format RPM)
  else()
    set(_format DEB)
  endif()
endif()
if(NOT _format MATCHES "^(DEB|RPM)$")
  message(FATAL_ERROR "FLOWRELAY_PACKAGE_FORMAT must be DEB or RPM, not '${_format}'")
endif()

# systemd reads units from / and /usr only. Other prefixes (/usr/local, /opt/...) get the unit
# under the prefix, to be linked or copied by hand.
set(_unitdir ${FLOWRELAY_SYSTEMD_UNIT_DIR})
if(NOT _unitdir)
  if(NOT CMAKE_INSTALL_PREFIX STREQUAL "/usr")
    set(_unitdir lib/systemd/system)
  elseif(_format STREQUAL "RPM")
    set(_unitdir /usr/lib/systemd/system)  # %{_unitdir} on every rpm distribution
  else()
    pkg_get_variable(_unitdir systemd systemdsystemunitdir)  # Debian 12: /lib/systemd/system
    if(NOT _unitdir)
      set(_unitdir /lib/systemd/system)
    endif()
  endif()
endif()

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
install(FILES ${_out}/flowrelay.service DESTINATION ${_unitdir}
  COMPONENT runtime)

# Man page and changelog are shipped gzipped; -n leaves out name and time, so the bytes only
# change with the text. Compressed at configure time (re-run when the source changes) so that
# `cmake --install` works after building any subset of targets.
find_program(FLOWRELAY_GZIP gzip REQUIRED)
function(_flowrelay_gzip in out)
  execute_process(COMMAND ${FLOWRELAY_GZIP} -9nc ${in} OUTPUT_FILE ${out}.tmp
    RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "gzip ${in} failed: ${rc}")
  endif()
  configure_file(${out}.tmp ${out} COPYONLY)
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${in})
endfunction()
_flowrelay_gzip(${_pkg}/flowrelayd.8 ${_out}/flowrelayd.8.gz)
install(FILES ${_out}/flowrelayd.8.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man8 COMPONENT runtime)

# License files where each distribution looks for them: Debian's machine-readable copyright
# and a changelog in /usr/share/doc/<package>/; the plain LICENSE in /usr/share/licenses/<package>/
# on rpm systems.
set(FLOWRELAY_DEB_RELEASE 1)
set(FLOWRELAY_DEB_VERSION ${PROJECT_VERSION}-${FLOWRELAY_DEB_RELEASE})
if(_format STREQUAL "DEB")
  configure_file(${_pkg}/debian/changelog.in ${_out}/changelog.Debian @ONLY)
  _flowrelay_gzip(${_out}/changelog.Debian ${_out}/changelog.Debian.gz)
  foreach(component IN ITEMS runtime dev)
    set(package flowrelay)
    if(component STREQUAL "dev")
      set(package flowrelay-dev)
    endif()
    install(FILES ${_pkg}/debian/copyright ${_out}/changelog.Debian.gz
      DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/${package} COMPONENT ${component})
    install(FILES ${_pkg}/debian/${package}.lintian-overrides
      DESTINATION ${CMAKE_INSTALL_DATADIR}/lintian/overrides RENAME ${package}
      COMPONENT ${component})
  endforeach()
else()
  install(FILES ${CMAKE_SOURCE_DIR}/LICENSE
    DESTINATION ${CMAKE_INSTALL_DATADIR}/licenses/flowrelay COMPONENT runtime)
  install(FILES ${CMAKE_SOURCE_DIR}/LICENSE
    DESTINATION ${CMAKE_INSTALL_DATADIR}/licenses/flowrelay-devel COMPONENT dev)
endif()

include(${_pkg}/CPackSettings.cmake)

# The test of the packages belongs to the suite; package trees themselves build no tests.
if(FLOWRELAY_BUILD_TESTS)
  add_subdirectory(${CMAKE_SOURCE_DIR}/tests/packaging ${CMAKE_BINARY_DIR}/tests/packaging)
endif()
