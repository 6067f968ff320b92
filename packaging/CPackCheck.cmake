# Run by cpack for each generator (CPACK_PROJECT_CONFIG_FILE): refuse packages whose compiled-in
# paths would be wrong for the package.
if(NOT CPACK_FLOWRELAY_INSTALL_PREFIX STREQUAL "/usr")
  message(FATAL_ERROR "flowrelay packages need a tree configured with "
    "-DCMAKE_INSTALL_PREFIX=/usr (this one: ${CPACK_FLOWRELAY_INSTALL_PREFIX}); flowrelayd "
    "and its config would look for plugins under the wrong prefix.")
endif()
if(CPACK_GENERATOR MATCHES "^(DEB|RPM)$"
   AND NOT CPACK_GENERATOR STREQUAL CPACK_FLOWRELAY_PACKAGE_FORMAT)
  message(FATAL_ERROR "this tree is laid out for ${CPACK_FLOWRELAY_PACKAGE_FORMAT} packages, "
    "not ${CPACK_GENERATOR}: configure another tree (RPM: -DCMAKE_INSTALL_LIBDIR=lib64).")
endif()
