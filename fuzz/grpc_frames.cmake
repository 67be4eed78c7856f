pt_fuzz_target(grpc_frames DEPS pt_http)
