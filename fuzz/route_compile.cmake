pt_fuzz_target(route_compile DEPS pt_route pt_http pt_core pt_proto)
