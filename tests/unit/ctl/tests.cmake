pt_unit_test(ctl cli DEPS pt_ctl)
# json encode|decode over the descpool test protos' descriptor set (built by
# tests/unit/transcode/tests.cmake's protoc step, target pt_tc_testpb).
pt_unit_test(ctl json DEPS pt_ctl)
add_dependencies(test_ctl_json pt_tc_testpb)
target_compile_definitions(test_ctl_json PRIVATE
  PT_TC_DESC="${CMAKE_BINARY_DIR}/gen-tests/transcode/transcode_test.desc")

# Conformance of the run-time pool path: random messages of the descpool test
# protos through `porticoctl json encode|decode` against python's json_format,
# python's classes built at run time from the same descriptor set
# (integration-labelled: it runs python and porticoctl processes).
add_test(NAME integration/ctl_json_conformance
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/json_conformance.py
                 --porticoctl $<TARGET_FILE:porticoctl> --count 400
                 --descriptor-set ${CMAKE_BINARY_DIR}/gen-tests/transcode/transcode_test.desc)
set_tests_properties(integration/ctl_json_conformance PROPERTIES
  LABELS integration TIMEOUT 300 ENVIRONMENT PYTHONDONTWRITEBYTECODE=1)
