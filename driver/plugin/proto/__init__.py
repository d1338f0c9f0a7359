"""Generated gRPC stubs of proto/*.proto (see proto/generate.py). Do not edit."""
