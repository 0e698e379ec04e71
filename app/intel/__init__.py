"""The pure intelligence engine: no Faust, no clock reads, no I/O.

Both shells (the batch CLI and the Faust worker) call these functions, so a
replay and the live stream cannot disagree. Time is always a parameter.
"""
