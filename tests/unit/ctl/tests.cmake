pt_unit_test(ctl cli DEPS pt_ctl)
# json encode|decode over the descpool test protos' descriptor set (built by
# tests/unit/transcode/tests.cmake's protoc step, target pt_tc_testpb).
pt_unit_test(ctl json DEPS pt_ctl)
add_dependencies(test_ctl_json pt_tc_testpb)
target_compile_definitions(test_ctl_json PRIVATE
  PT_TC_DESC="${CMAKE_BINARY_DIR}/gen-tests/transcode/transcode_test.desc")
