"""prediction.py: the lookup source found in requests that carry no `prediction`."""

from __future__ import annotations

from blazedit_server.prediction import chat_lookup_source, editable_region, fenced_code, rewrite_section


def test_older_zed_prompt_marks_the_section_in_the_document_and_repeats_it():
    """The prose mentions empty tags; the document marks the section; the prompt repeats it: last one wins."""
    prompt = (
        "The section you'll need to rewrite is marked with <rewrite_this></rewrite_this> tags.\n"
        "<document>\nimport os\n<rewrite_this>\nx = 1\n</rewrite_this>\n</document>\n"
        "Edit the section in <rewrite_this></rewrite_this> tags.\n"
        "And here's the section again:\n\n<rewrite_this>\nx = 1\ny = 2\n</rewrite_this>\n"
    )
    assert rewrite_section(prompt) == "x = 1\ny = 2"


def test_selection_tags_are_dropped_from_the_section():
    section = "fn a() {\n    <edit_here>1</edit_here> + <insert_here></insert_here>2\n}"
    prompt = f"<rewrite_this>\n{section}\n</rewrite_this>"
    assert rewrite_section(prompt) == "fn a() {\n    1 + 2\n}"


def test_fenced_code_of_any_length_and_language():
    message = "Fix this:\n```python\ndef f():\n    return 1\n```\nand\n~~~~\nx\n~~~~\n"
    assert fenced_code(message) == "def f():\n    return 1\nx\n"
    assert fenced_code("no code here") is None


def test_chat_source_prefers_the_rewrite_section_then_fences():
    assert chat_lookup_source("<rewrite_this>\nA\n</rewrite_this>\n```\nB\n```") == "A"
    assert chat_lookup_source("```\nB\n```") == "B\n"
    assert chat_lookup_source("just words") is None


def test_zeta_region_keeps_its_markers_and_drops_the_cursor():
    prompt = "x\n<|editable_region_start|>\nab<|user_cursor_is_here|>c\n<|editable_region_end|>\ny"
    assert editable_region(prompt) == "<|editable_region_start|>\nabc\n<|editable_region_end|>"
    assert editable_region("<|fim_prefix|>abc<|fim_suffix|>") is None
