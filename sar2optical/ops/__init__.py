"""Array operations below the networks.

`sar2optical.ops.conv`: `conv` and `conv_transpose4x4`, each in the form that the platform a
computation is compiled for runs fastest. The functions are not re-exported here, so that
`sar2optical.ops.conv` always names the module.
"""
