# CPack: flowrelay (component runtime) and flowrelay-dev / flowrelay-devel (component dev),
# as .deb or .rpm (_format). Included from Packaging.cmake; _format and paths such as _config,
# _out and _pkg come from there.

set(CPACK_PACKAGE_NAME flowrelay)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "flowrelay developers")
set(CPACK_PACKAGE_CONTACT "flowrelay developers <flowrelay@example.org>")
set(CPACK_RESOURCE_FILE_LICENSE ${CMAKE_SOURCE_DIR}/LICENSE)
set(CPACK_GENERATOR ${_format})
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_COMPONENTS_ALL runtime dev)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_RPM_COMPONENT_INSTALL ON)
set(CPACK_SOURCE_GENERATOR TGZ)
set(CPACK_SOURCE_IGNORE_FILES "/\\\\.git/" "/build[^/]*/" "/cmake-build[^/]*/")

# Checked by cpack: a package is only right for the tree's prefix and library layout.
set(CPACK_FLOWRELAY_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_FLOWRELAY_PACKAGE_FORMAT ${_format})
set(CPACK_PROJECT_CONFIG_FILE ${_pkg}/CPackCheck.cmake)

# Descriptions: the first line is the summary (Debian), the rest the long description.
set(_runtime_long "flowrelayd accepts WebSocket clients on ws://host:port/ws/{conversation_id}
and relays every text message to every client of the same conversation. Brokers
are plugins: broker-local for one node, broker-redis to share conversations
between nodes through Redis.

The package installs the daemon, its plugins, the configuration
/etc/flowrelay/flowrelay.yaml (listening on 127.0.0.1, for nginx in front) and
the systemd unit flowrelay.service, run as the system user flowrelay.")
set(_dev_long "Headers of the plain-C plugin ABI, the CMake package FlowRelaySDK, the
pkg-config file flowrelay-sdk.pc and the sources of an example broker plugin,
to build flowrelay plugins out of tree.")
set(CPACK_COMPONENT_RUNTIME_DESCRIPTION
    "WebSocket chat relay with pluggable message brokers\n${_runtime_long}")
set(CPACK_COMPONENT_DEV_DESCRIPTION
    "SDK to build flowrelay broker and transport plugins\n${_dev_long}")

# ---- deb -----------------------------------------------------------------------------------
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # flowrelay_0.1.0-1_amd64.deb
set(CPACK_DEBIAN_PACKAGE_RELEASE ${FLOWRELAY_DEB_RELEASE})
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_NAME flowrelay)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SECTION net)
# dpkg-shlibdeps adds the libraries of flowrelayd and the plugins (Poco, yaml-cpp, hiredis,
# libsystemd, libstdc++); adduser is for postinst.
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_RUNTIME_PACKAGE_DEPENDS "adduser")
set(CPACK_DEBIAN_RUNTIME_PACKAGE_SUGGESTS "nginx, redis-server")
configure_file(${_pkg}/debian/conffiles.in ${_out}/debian/conffiles @ONLY)
foreach(script postinst prerm postrm)
  # CPack copies the control files with their permissions: 0755 from the source tree.
  configure_file(${_pkg}/debian/${script} ${_out}/debian/${script} COPYONLY)
endforeach()
set(CPACK_DEBIAN_RUNTIME_PACKAGE_CONTROL_EXTRA
    ${_out}/debian/conffiles ${_out}/debian/postinst ${_out}/debian/prerm ${_out}/debian/postrm)
set(CPACK_DEBIAN_DEV_PACKAGE_NAME flowrelay-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION devel)
set(CPACK_DEBIAN_DEV_PACKAGE_SUGGESTS "flowrelay (= ${FLOWRELAY_DEB_VERSION}), cmake, pkg-config")

# ---- rpm -----------------------------------------------------------------------------------
set(CPACK_RPM_FILE_NAME RPM-DEFAULT)  # flowrelay-0.1.0-1.x86_64.rpm
set(CPACK_RPM_PACKAGE_RELEASE 1)
set(CPACK_RPM_PACKAGE_LICENSE MIT)
set(CPACK_RPM_RUNTIME_PACKAGE_NAME flowrelay)
set(CPACK_RPM_RUNTIME_PACKAGE_SUMMARY "WebSocket chat relay with pluggable message brokers")
set(CPACK_RPM_RUNTIME_PACKAGE_DESCRIPTION "${_runtime_long}")
set(CPACK_RPM_DEV_PACKAGE_NAME flowrelay-devel)
set(CPACK_RPM_DEV_PACKAGE_SUMMARY "SDK to build flowrelay broker and transport plugins")
set(CPACK_RPM_DEV_PACKAGE_DESCRIPTION "${_dev_long}")
# Library requirements come from rpmbuild's dependency generator (AutoReq); the plugins are
# private to flowrelayd and are not offered as Provides.
set(CPACK_RPM_PACKAGE_AUTOREQ yes)
set(CPACK_RPM_SPEC_MORE_DEFINE "%global __provides_exclude_from ^${_plugin_dir}/")
set(CPACK_RPM_RUNTIME_PACKAGE_REQUIRES_PRE "/usr/sbin/useradd, /usr/sbin/groupadd")
set(CPACK_RPM_RUNTIME_PRE_INSTALL_SCRIPT_FILE ${_pkg}/rpm/pre.sh)
set(CPACK_RPM_RUNTIME_POST_INSTALL_SCRIPT_FILE ${_pkg}/rpm/post.sh)
set(CPACK_RPM_RUNTIME_PRE_UNINSTALL_SCRIPT_FILE ${_pkg}/rpm/preun.sh)
set(CPACK_RPM_RUNTIME_POST_UNINSTALL_SCRIPT_FILE ${_pkg}/rpm/postun.sh)
set(CPACK_RPM_RUNTIME_USER_FILELIST "%config(noreplace) ${_config}")
# Folders owned by the filesystem, systemd, man and pkgconfig packages, not by flowrelay.
set(CPACK_RPM_EXCLUDE_FROM_AUTO_FILELIST_ADDITION
    /usr/lib/systemd /usr/lib/systemd/system /usr/sbin /usr/share/man /usr/share/man/man8
    /usr/share/licenses /usr/${CMAKE_INSTALL_LIBDIR}/cmake /usr/${CMAKE_INSTALL_LIBDIR}/pkgconfig)

include(CPack)
