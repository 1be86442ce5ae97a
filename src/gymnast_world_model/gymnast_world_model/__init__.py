"""The action-conditioned video world model (the dream): codec, dynamics, training, batched dream env and dream node."""
