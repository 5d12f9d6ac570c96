"""Looking inside the network (the lecture's part on how networks see).

- :func:`activation_maps` — a picture's feature maps per layer, the most active channels
  first, optionally over the photo, folded into 3 colours (PCA/NMF), or Gram matrices;
- :func:`scan` and the atlas (``patches``) — Zeiler & Fergus's top patches per channel over a
  folder or tar of pictures (the whole atlas, written to a folder, is the ``top-patches`` job:
  ``painterly.run_job(painterly.Job("top-patches", (folder,), TopPatchesConfig(), "atlas"))``);
- :func:`visualize` — feature visualisation by activation maximisation (lucid's recipe);
- :func:`reconstruct` — Gatys et al. 2015's Figure 1: the photo from each layer's content
  representation, the painting's texture from growing sets of style layers.
"""
from .activations import ActivationMaps, ActivationsConfig, activation_maps
from .features import FeaturesConfig, FeaturesResult, visualize
from .patches import TopPatches, TopPatchesConfig, patch_box, scan
from .reconstruction import Reconstruction, ReconstructConfig, reconstruct

__all__ = ["ActivationMaps", "ActivationsConfig", "FeaturesConfig", "FeaturesResult",
           "ReconstructConfig", "Reconstruction", "TopPatches", "TopPatchesConfig",
           "activation_maps", "patch_box", "reconstruct", "scan", "visualize"]
