pt_fuzz_target(grpcweb DEPS pt_grpc)
