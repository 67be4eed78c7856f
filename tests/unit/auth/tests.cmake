# One cmocka executable per tests/unit/auth/test_<file>.c, linked with pt_auth
# and libjwt (the independent cross-check of our signature verdicts).
file(GLOB pt_auth_tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/test_*.c)
foreach(t ${pt_auth_tests})
  get_filename_component(n ${t} NAME_WE)
  string(REGEX REPLACE "^test_" "" n ${n})
  pt_unit_test(auth ${n} DEPS pt_auth PkgConfig::LIBJWT)
endforeach()
# test_fetch.c runs authsrv.py (next to it) with /usr/bin/python3, and the
# openssl CLI for its test certificates.
if(TARGET test_auth_fetch)
  target_compile_definitions(test_auth_fetch PRIVATE PT_AUTH_TEST_DIR="${CMAKE_CURRENT_LIST_DIR}")
  set_tests_properties(unit/auth/fetch PROPERTIES ENVIRONMENT PYTHONDONTWRITEBYTECODE=1)
endif()
