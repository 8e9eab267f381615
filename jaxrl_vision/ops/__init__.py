"""Custom operators (RubiksShift, ...), each beside a pure-jnp reference."""
