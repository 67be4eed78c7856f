# One cmocka executable per tests/unit/transcode/test_<file>.c, linked with pt_transcode.
file(GLOB pt_transcode_tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/test_*.c)
foreach(t ${pt_transcode_tests})
  get_filename_component(n ${t} NAME_WE)
  string(REGEX REPLACE "^test_" "" n ${n})
  pt_unit_test(transcode ${n} DEPS pt_transcode)
endforeach()
