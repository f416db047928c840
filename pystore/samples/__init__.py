"""Sample resource types (Agent, Workflow, AgentExecution, Session).

The ``*_pb2`` modules are generated from ``protos/pystore/samples/*.proto``
by protoc (grpcio-tools) when the package is built; they are not in the
source tree.
"""
