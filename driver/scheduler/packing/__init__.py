"""Packing strategies (binpack, spread, fgd, fragmentation): the node *and* device choice among
the nodes every filter allowed. `config` is the user's packing config, `scoring` the strategies,
`adapter` turns claims and inventories into the scorer's compact shapes, `physical` maps devices
to the physical GPUs they share."""
