import types

import hub


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(hub).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(hub.__all__) == public
