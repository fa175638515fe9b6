"""``octopush_dlt.errors``: the dlt layer's errors, under the core's root."""

from __future__ import annotations

import pytest

import octopush_provider.exceptions
from octopush_dlt.errors import OctopushDeletionError, OctopushPrivacyError
from octopush_provider.exceptions import OctopushConfigError, OctopushError


def test_a_privacy_error_is_a_setting_error_and_a_value_error():
    assert OctopushPrivacyError.__mro__[1:3] == (OctopushConfigError, OctopushError)
    assert issubclass(OctopushPrivacyError, ValueError)


def test_a_deletion_error_is_caught_by_the_root_but_is_no_setting_error():
    assert OctopushDeletionError.__mro__[1:3] == (OctopushError, Exception)
    assert not issubclass(OctopushDeletionError, OctopushConfigError)


@pytest.mark.parametrize("error", [OctopushPrivacyError, OctopushDeletionError])
def test_one_except_of_the_root_catches_the_dlt_layer_errors(error):
    with pytest.raises(OctopushError, match="what to do"):
        raise error("what to do")


def test_the_core_no_longer_defines_the_dlt_layer_errors():
    assert not hasattr(octopush_provider.exceptions, "OctopushPrivacyError")
    assert not hasattr(octopush_provider.exceptions, "OctopushDeletionError")
    assert OctopushPrivacyError.__module__ == "octopush_dlt.errors"
