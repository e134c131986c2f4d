"""Behavioural models for the UART host interface: bus-functional models of the serial lines (:mod:`sparq.sim.uart.bfm`),
the device side of the protocol (:mod:`sparq.sim.uart.model`) and test rigs that put real blocks behind the bridge
(:mod:`sparq.sim.uart.rigs`)."""
