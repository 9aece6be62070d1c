# A package, so these test module names cannot collide with others under tests/.
