"""Feed-forward networks and their training.

* :mod:`.decoder`: decoders that invert VGG16 features (for AdaIN, WCT, style-swap).
* :mod:`.training`: what every trainer shares: photo crops, the learning-rate schedule,
  atomic checkpoints, the JSONL log.
* :mod:`.train_decoder`: the resumable decoder training (``restyle train decoder``).
* :mod:`.stylenet`, :mod:`.train_style`: feed-forward style networks (``restyle train style``).
* :mod:`.lite`, :mod:`.train_lite`: the distilled AdaIN encoder/decoder
  (``--method adain-lite``, ``restyle train adain-lite``).
"""

from .decoder import LEVELS, Decoder, default_decoder_path, get_decoder, load_decoder

__all__ = ["Decoder", "load_decoder", "get_decoder", "default_decoder_path", "LEVELS"]
