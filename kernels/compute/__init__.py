"""Pure compute for the kernels: functions of arrays, with the array module as ``xp``.

Nothing in this subpackage imports ``ringctl``: the math is usable (and tested) on its
own, and the kernel bodies stay thin.
"""
