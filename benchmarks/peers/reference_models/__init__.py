"""Public SASRec / BERT4Rec implementations, rewritten from their source for recblocks' layout tests.

One module per implementation (and per version where the code changed in a way a checkpoint
cannot show). Each keeps the original's module and parameter names, so its ``state_dict`` has
the keys a checkpoint of the original has, and its forward computes what the original's
inference path computes, in eval mode (dropout is never applied here). tests/golden/
make_layout_goldens.py builds each with random weights and records its scores.
"""
