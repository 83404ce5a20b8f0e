"""restyle: neural style transfer, the whole field, usable from Python and the shell.

>>> import restyle
>>> img = restyle.transfer("photo.jpg", "painting.jpg", size=512)   # PIL image
>>> img.save("out.png")
"""

__version__ = "0.1.0"  # first: modules imported below read it

from .api import analogy, doodle, dream, info, models, style_sheet, texture, transfer
from .errors import RestyleError
from .imaging import load_image, save_image
from .methods import all_methods, get_method

__all__ = ["transfer", "texture", "dream", "doodle", "analogy", "style_sheet", "info", "models",
           "load_image", "save_image",
           "get_method", "all_methods",
           "RestyleError", "__version__"]
