"""The `policies` feature: the policy registry's partition dimension, its sensor, `register_policy`."""
