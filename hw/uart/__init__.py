"""The UART host interface: 8N1 serial receiver and transmitter (:mod:`sparq.hw.uart.serial`), the byte protocol shared by
the hardware, the simulation models and the host driver (:mod:`sparq.hw.uart.protocol`), and the protocol engine that
drives an accelerator's ports from it (:mod:`sparq.hw.uart.bridge`).

:mod:`sparq.hw.uart.protocol` is plain Python (no Amaranth), so that cocotb testbenches and the pyserial driver import it
without the HDL.
"""
