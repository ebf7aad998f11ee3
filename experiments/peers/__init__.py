"""Peer implementations of the same models and step, for `python -m experiments.bench --peers`.

The step is the idiomatic alternating one (pytorch/examples' dcgan): one G forward shared by the
D update (on the detached fakes, D on [real; fake]) and the G update (through the updated D);
Adam; BCE on logits. Architectures match gen_models.models exactly in parameter counts and
output shapes (tests/test_peers.py)."""
