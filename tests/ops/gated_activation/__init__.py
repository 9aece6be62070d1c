# A package, so that these test module names cannot collide with same-named ones elsewhere.
