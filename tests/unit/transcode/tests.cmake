# One cmocka executable per tests/unit/transcode/test_<file>.c, linked with pt_transcode.
file(GLOB pt_transcode_tests CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/test_*.c)
foreach(t ${pt_transcode_tests})
  get_filename_component(n ${t} NAME_WE)
  string(REGEX REPLACE "^test_" "" n ${n})
  pt_unit_test(transcode ${n} DEPS pt_transcode)
endforeach()

# descpool: the test protos (tests/protos/transcode) compiled twice - by
# protoc-c into the reference C code, and by protoc into the descriptor set
# the pool is built from at run time.
if(TARGET test_transcode_descpool)
  set(pt_tc_proto_dir ${CMAKE_SOURCE_DIR}/tests/protos/transcode)
  set(pt_tc_gen ${CMAKE_BINARY_DIR}/gen-tests/transcode)
  set(pt_tc_c_protos common.proto kitchen.proto legacy.proto)
  set(pt_tc_all_protos ${pt_tc_c_protos} optional.proto)
  # pt_proto carries most well-known types; generate the rest here.
  get_target_property(pt_tc_proto_srcs pt_proto SOURCES)
  set(pt_tc_wkt)
  if(NOT pt_tc_proto_srcs MATCHES "google/protobuf/duration\\.pb-c\\.c")
    list(APPEND pt_tc_wkt google/protobuf/duration.proto)
  endif()
  set(pt_tc_gen_c)
  set(pt_tc_inputs)
  foreach(p ${pt_tc_c_protos} ${pt_tc_wkt})
    string(REGEX REPLACE "\\.proto$" ".pb-c.c" c ${p})
    list(APPEND pt_tc_gen_c ${pt_tc_gen}/${c})
  endforeach()
  foreach(p ${pt_tc_all_protos})
    list(APPEND pt_tc_inputs ${pt_tc_proto_dir}/${p})
  endforeach()
  add_custom_command(
    OUTPUT ${pt_tc_gen_c} ${pt_tc_gen}/transcode_test.desc
    COMMAND ${CMAKE_COMMAND} -E make_directory ${pt_tc_gen}
    COMMAND ${PROTOC_C} -I${pt_tc_proto_dir} -I${CMAKE_SOURCE_DIR}/proto/third_party -I/usr/include
            --c_out=${pt_tc_gen} ${pt_tc_c_protos} ${pt_tc_wkt}
    COMMAND ${PROTOC} -I${pt_tc_proto_dir} -I${CMAKE_SOURCE_DIR}/proto/third_party -I/usr/include
            --include_imports --descriptor_set_out=${pt_tc_gen}/transcode_test.desc
            ${pt_tc_all_protos}
    DEPENDS ${pt_tc_inputs}
    WORKING_DIRECTORY ${pt_tc_proto_dir}
    COMMENT "protoc-c/protoc: transcode test protos")
  add_library(pt_tc_testpb STATIC ${pt_tc_gen_c} ${pt_tc_gen}/transcode_test.desc)
  # Generated code is not ours to lint; protoc-c 1.4 also writes proto2
  # float defaults as bare `inf`/`nan`, which the forced header defines.
  target_compile_options(pt_tc_testpb PRIVATE -w
    -include ${CMAKE_CURRENT_LIST_DIR}/protoc_c_compat.h)
  target_include_directories(pt_tc_testpb PUBLIC ${pt_tc_gen})
  target_link_libraries(pt_tc_testpb PUBLIC pt_proto)
  # pbgen: random messages and deep comparison for any descriptor.
  add_library(pt_tc_pbgen STATIC ${CMAKE_CURRENT_LIST_DIR}/pbgen.c)
  target_link_libraries(pt_tc_pbgen PUBLIC pt_transcode m)
  target_include_directories(pt_tc_pbgen PUBLIC ${CMAKE_CURRENT_LIST_DIR})
  target_link_libraries(test_transcode_descpool PRIVATE pt_tc_testpb pt_tc_pbgen m Threads::Threads)
  target_compile_definitions(test_transcode_descpool PRIVATE
    PT_TC_DESC="${pt_tc_gen}/transcode_test.desc")
endif()

# The JSON codec's test schema (tests/protos/transcode_json) compiled by
# protoc-c, with the hooks a descriptor pool would give (json_fixture.c);
# also used by fuzz/transcode_json and bench_json_codec.
set(PT_TCJ_PROTO_DIR ${CMAKE_CURRENT_LIST_DIR}/../../protos/transcode_json)
set(PT_TCJ_GEN ${CMAKE_BINARY_DIR}/gen_transcode_json)
add_custom_command(
  OUTPUT ${PT_TCJ_GEN}/kitchen.pb-c.c ${PT_TCJ_GEN}/kitchen.pb-c.h
         ${PT_TCJ_GEN}/presence.pb-c.c ${PT_TCJ_GEN}/presence.pb-c.h
  COMMAND ${CMAKE_COMMAND} -E make_directory ${PT_TCJ_GEN}
  COMMAND ${PROTOC_C} -I${PT_TCJ_PROTO_DIR} -I/usr/include --c_out=${PT_TCJ_GEN}
          kitchen.proto presence.proto
  DEPENDS ${PT_TCJ_PROTO_DIR}/kitchen.proto ${PT_TCJ_PROTO_DIR}/presence.proto
  WORKING_DIRECTORY ${PT_TCJ_PROTO_DIR}
  COMMENT "protoc-c: JSON codec test protos")
add_library(pt_test_json STATIC ${PT_TCJ_GEN}/kitchen.pb-c.c ${PT_TCJ_GEN}/presence.pb-c.c
            ${CMAKE_CURRENT_LIST_DIR}/json_fixture.c)
target_compile_options(pt_test_json PRIVATE -Wno-missing-prototypes -Wno-missing-braces)
target_include_directories(pt_test_json PUBLIC ${PT_TCJ_GEN} ${CMAKE_CURRENT_LIST_DIR})
target_link_libraries(pt_test_json PUBLIC pt_transcode pt_proto)
foreach(t json_decode json_encode json_golden)
  if(TARGET test_transcode_${t})
    target_link_libraries(test_transcode_${t} PRIVATE pt_test_json PkgConfig::JANSSON)
    target_compile_definitions(test_transcode_${t} PRIVATE
      PT_JSON_GOLDEN_DIR="${CMAKE_CURRENT_LIST_DIR}/json_golden")
  endif()
endforeach()

# Not a test: the codec as a command next to the portico binary, for
# json_roundtrip.py (against python's json_format) and for people.
add_executable(tc_json ${CMAKE_CURRENT_LIST_DIR}/tc_json.c)
target_link_libraries(tc_json PRIVATE pt_test_json)
set_target_properties(tc_json PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR})

# Random messages through tc_json against python's json_format, both ways
# (integration-labelled: it runs python and protoc).
add_test(NAME integration/transcode_json_roundtrip
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_LIST_DIR}/json_roundtrip.py
                 --tc-json $<TARGET_FILE:tc_json> --count 300)
set_tests_properties(integration/transcode_json_roundtrip PROPERTIES
  LABELS integration TIMEOUT 300 ENVIRONMENT PYTHONDONTWRITEBYTECODE=1)

# pool_hooks: the codec over the descpool test protos' run-time pool.
if(TARGET test_transcode_pool_hooks AND TARGET test_transcode_descpool)
  add_dependencies(test_transcode_pool_hooks pt_tc_testpb)
  target_compile_definitions(test_transcode_pool_hooks PRIVATE
    PT_TC_DESC="${pt_tc_gen}/transcode_test.desc")
endif()

# reflect: the fetch against a fake server answering from the descpool set.
if(TARGET test_transcode_reflect AND TARGET test_transcode_descpool)
  add_dependencies(test_transcode_reflect pt_tc_testpb)
  target_compile_definitions(test_transcode_reflect PRIVATE
    PT_TC_DESC="${pt_tc_gen}/transcode_test.desc")
endif()

# route: a Transcode config compiled against the integration tests'
# bookstore service (tests/integration/protos/portico/test/bookstore.proto).
if(TARGET test_transcode_route)
  set(pt_tc_bs_dir ${CMAKE_SOURCE_DIR}/tests/integration/protos)
  set(pt_tc_bs_desc ${CMAKE_BINARY_DIR}/gen-tests/transcode/bookstore.desc)
  add_custom_command(
    OUTPUT ${pt_tc_bs_desc}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/gen-tests/transcode
    COMMAND ${PROTOC} -I${pt_tc_bs_dir} -I${CMAKE_SOURCE_DIR}/proto/third_party -I/usr/include
            --include_imports --descriptor_set_out=${pt_tc_bs_desc} portico/test/bookstore.proto
    DEPENDS ${pt_tc_bs_dir}/portico/test/bookstore.proto ${pt_tc_bs_dir}/google/api/httpbody.proto
    COMMENT "protoc: transcode route test proto")
  add_custom_target(pt_tc_bookstore_desc DEPENDS ${pt_tc_bs_desc})
  add_dependencies(test_transcode_route pt_tc_bookstore_desc)
  target_compile_definitions(test_transcode_route PRIVATE PT_TC_BOOKSTORE_DESC="${pt_tc_bs_desc}")
endif()

# route_live: routes recompiled from each pool the reflection registry
# publishes, over the same bookstore descriptor set.
if(TARGET test_transcode_route_live AND TARGET test_transcode_route)
  add_dependencies(test_transcode_route_live pt_tc_bookstore_desc)
  target_link_libraries(test_transcode_route_live PRIVATE Threads::Threads)
  target_compile_definitions(test_transcode_route_live PRIVATE
    PT_TC_BOOKSTORE_DESC="${pt_tc_bs_desc}")
endif()
