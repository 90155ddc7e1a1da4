"""Generated protobuf and gRPC stubs (package crossclear.v1). Do not edit: run proto/generate.py."""
