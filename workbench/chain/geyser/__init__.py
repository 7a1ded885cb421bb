"""Yellowstone gRPC (Geyser) stubs, generated from ``proto/`` by ``regenerate.py`` and committed.

``proto/geyser.proto`` and ``proto/solana-storage.proto`` are copies of
rpcpool/yellowstone-grpc's ``yellowstone-grpc-proto/proto/`` (Apache-2.0, its licence in
``proto/LICENSE_APACHE2``; where they came from: ``proto/SOURCES.md``). Import the modules
(``from workbench.chain.geyser import geyser_pb2, geyser_pb2_grpc``) only where a Geyser
stream is used: geyser_pb2 needs protobuf; geyser_pb2_grpc needs grpcio, a dev dependency
since the client speaks HTTP/2 itself (chain/geyser_stream.py): the tests' server and the
benchmark's peer client use it.
"""
