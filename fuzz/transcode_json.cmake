# The JSON codec over the test schema that tests/unit/transcode builds.
if(TARGET pt_test_json)
  pt_fuzz_target(transcode_json DEPS pt_test_json pt_transcode)
endif()
