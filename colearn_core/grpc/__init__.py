"""colearn's MLI-factory side of ``colearn_grpc``, without the gRPC transport (the chain
and the agents replace it): :class:`~colearn_core.grpc.mli_factory_interface.MliFactory`,
:class:`~colearn_core.grpc.factory_registry.FactoryRegistry` and
:class:`~colearn_core.grpc.example_mli_factory.ExampleMliFactory`, with colearn's names
and signatures. ``colearn agent --mli-factory MODULE:NAME`` serves a learner from one."""
