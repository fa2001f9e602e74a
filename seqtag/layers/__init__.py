"""The network's layers, each one unit with its forward and backward side by side.

The pattern is thinc's: ``forward(X, ...) -> (Y, backprop)``, where ``backprop(dY) -> dX`` is a
closure over what the forward pass computed (masks, caches, the distinct input rows), so a
layer's backward pass can never be paired with another call's forward. Parameters live in one
dict of arrays shared by every layer (the model's ``params``, which the file format and the
optimizer see as one); a layer reads its own entries by name and, in ``backprop``, adds its
gradients into the same names of the ``grads`` dict the trainer attached (``attach_grads``).

The layers of the tagger, input to output (seqtag.network composes them):
  embed.EmbeddingSum   x_e = Σ_f Ex[:, ids_f]           the word's and its features' columns
  charcnn.CharCNN      c = tanh(max_w Wconv·[Ec]_w + bconv)   the spelling's vector
  dropout.Dropout      x ⊙ m / (1 - p)                    inverted dropout (input and states)
  recurrent.Recurrent  a<t> = cell(Wax·x<t>, a<t-1>)      one per direction, Elman/GRU/LSTM
  linear.Linear        e<t> = Wya·a<t> + by               the output projection
  output.Softmax / output.CRF                            the loss, marginals and the chain

The kernels are the engine underneath; layers only choose buffers and call them: the forward
pass calls the set given at construction (seqtag.engines: Numba's, seqtag.kernels, or NumPy's,
seqtag.engines.numpy_kernels), backprop always Numba's.
"""
