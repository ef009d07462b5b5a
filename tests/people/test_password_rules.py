"""Password rules after NIST SP 800-63B: length, no composition rules, the bundled list of
breached passwords, easy patterns, the person's own name."""

from __future__ import annotations

from supervision.passwords import problems

GOOD = "vinter morgon vid sjön"


def test_password_rules_length_over_complexity() -> None:
    assert problems("kort") == ["too-short"]
    assert problems("x" * 129) == ["too-long"]
    for common in ("password1234", "iloveyou2024!!", "qwertyuiopasdf", "123456789012",
                   "aaaaaaaaaaaaaa", "Sommar2024!!Sommar"[:12]):
        assert "common" in problems(common) or "context" in problems(common), common
    assert problems("annasvensson99", username="anna", name="Anna Svensson") == ["personal"]
    assert problems("nattillsyn123") == ["context"]
    # no composition rules: lower-case words with spaces are fine, so is any Unicode
    assert problems(GOOD, username="anna", name="Anna Svensson") == []
    assert problems("kaffe och kanelbullar") == []
