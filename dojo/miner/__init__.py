"""The Dojo miner: serves validators' requests and hands tasks to its workers."""
