# A package, so that these module names (test_loss, test_shape...) cannot collide
# with same-named test modules in other test folders under pytest's default import mode.
