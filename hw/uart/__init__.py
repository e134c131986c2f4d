"""The UART host interface: an 8N1 serial receiver and transmitter (:mod:`sparq.hw.uart.serial`) and the protocol engine
that drives an accelerator's ports from them (:mod:`sparq.hw.uart.bridge`).

The protocol itself, the bytes on the wire, is :mod:`sparq.formats.uart`: plain Python (no Amaranth), shared with the
simulation models and the host driver, which import it without the HDL.
"""
