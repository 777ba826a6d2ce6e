"""Tools that measure the node's algorithms against ground truth; the running node never imports them."""
