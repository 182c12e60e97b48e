"""Imports every built-in model module so their `@register_model` decorators run."""

import mimsa.models.lmf  # noqa: F401
import mimsa.models.mag_bert  # noqa: F401
import mimsa.models.mecam  # noqa: F401
import mimsa.models.misa  # noqa: F401
import mimsa.models.mmim  # noqa: F401
import mimsa.models.mult  # noqa: F401
import mimsa.models.self_mm  # noqa: F401
import mimsa.models.tfn  # noqa: F401
from mimsa.models import ef_lstm, late_fusion, text_only  # noqa: F401
