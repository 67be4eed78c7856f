# One cmocka executable per tests/unit/auth/test_<file>.c, linked with pt_auth
# and libjwt (the independent cross-check of our signature verdicts).
file(GLOB pt_auth_tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/test_*.c)
foreach(t ${pt_auth_tests})
  get_filename_component(n ${t} NAME_WE)
  string(REGEX REPLACE "^test_" "" n ${n})
  pt_unit_test(auth ${n} DEPS pt_auth PkgConfig::LIBJWT)
endforeach()
