# A transcoded call's request building, response rendering and error shape
# over the bookstore descriptor set that tests/unit/transcode builds.
if(TARGET pt_tc_bookstore_desc)
  pt_fuzz_target(transcode_route DEPS pt_transcode)
  add_dependencies(replay_transcode_route pt_tc_bookstore_desc)
  target_compile_definitions(replay_transcode_route PRIVATE
    PT_TC_BOOKSTORE_DESC="${CMAKE_BINARY_DIR}/gen-tests/transcode/bookstore.desc")
  if(TARGET fuzz_transcode_route)
    add_dependencies(fuzz_transcode_route pt_tc_bookstore_desc)
    target_compile_definitions(fuzz_transcode_route PRIVATE
      PT_TC_BOOKSTORE_DESC="${CMAKE_BINARY_DIR}/gen-tests/transcode/bookstore.desc")
  endif()
endif()
