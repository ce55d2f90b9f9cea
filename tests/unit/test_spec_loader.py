"""Loading a workflow file: every load-time error names file:line and is a SpecError."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from yaml_workflow.engine.load import load_workflow
from yaml_workflow.exceptions import EXIT_REFUSED, SpecError, TaskNotFoundError
from yaml_workflow.spec.loader import load_workflow_file


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def load_error(path: Path) -> SpecError:
    """The SpecError that loading ``path`` (through engine.load) raises."""
    with pytest.raises(SpecError) as caught:
        load_workflow(path)
    err = caught.value
    assert err.exit_code == EXIT_REFUSED
    assert "\n" not in err.one_line()
    return err


# --- YAML and unknown keys --------------------------------------------------------------


def test_malformed_yaml_names_the_file_and_line(tmp_path: Path) -> None:
    # given a file whose fifth line breaks the YAML structure
    path = write(tmp_path, "broken.yaml", """
        name: broken
        steps:
          - name: a
            task: echo
           bad: [
    """)
    # when it is loaded
    err = load_error(path)
    # then the error names file:line and says it is YAML
    assert err.file == str(path)
    assert err.line == 5
    assert f"{path}:5:" in err.one_line()
    assert "invalid YAML" in err.one_line()


def test_unknown_top_level_key_suggests_the_closest(tmp_path: Path) -> None:
    # given `stpes` instead of `steps` on line 2
    path = write(tmp_path, "typo.yaml", """
        name: typo
        stpes:
          - name: a
            task: echo
    """)
    err = load_error(path)
    # then the key, its line and the suggestion are in one line
    assert err.line == 2
    line = err.one_line()
    assert "'stpes'" in line
    assert "did you mean 'steps'" in line
    assert f"{path}:2:" in line


def test_unknown_step_key_is_refused_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "stepkey.yaml", """
        steps:
          - name: a
            task: echo
            inptus:
              message: hi
    """)
    err = load_error(path)
    assert err.line == 4
    assert "unknown step key 'inptus'" in err.one_line()
    assert "did you mean 'inputs'" in err.one_line()


# --- step names, tasks, references --------------------------------------------------------


def test_duplicate_step_names_in_list_form(tmp_path: Path) -> None:
    path = write(tmp_path, "dup.yaml", """
        steps:
          - name: a
            task: echo
          - name: a
            task: noop
    """)
    err = load_error(path)
    # the second definition is the one reported, and the first is named
    assert err.line == 4
    assert "'a' is used twice" in err.one_line()
    assert "first at line 2" in err.one_line()


def test_duplicate_step_keys_in_mapping_form(tmp_path: Path) -> None:
    path = write(tmp_path, "dupmap.yaml", """
        steps:
          a:
            task: echo
          a:
            task: noop
    """)
    err = load_error(path)
    assert err.line == 4
    assert "'a' appears twice" in err.one_line()


def test_yaml_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    # given a step that merges shared inputs and overrides one of them
    path = write(tmp_path, "merge.yaml", """
        steps:
          - name: a
            task: echo
            inputs: &common {message: hi, extra: 1}
          - name: b
            task: echo
            inputs:
              <<: *common
              message: override
    """)
    workflow = load_workflow(path)
    # then the override wins and the rest is merged in
    assert workflow.step("a").inputs == {"message": "hi", "extra": 1}
    assert workflow.step("b").inputs == {"message": "override", "extra": 1}


def test_a_key_written_twice_next_to_a_merge_is_still_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "merge_dup.yaml", """
        steps:
          - name: a
            task: echo
            inputs: &common {message: hi}
          - name: b
            task: echo
            inputs:
              <<: *common
              message: one
              message: two
    """)
    err = load_error(path)
    assert err.line == 10
    assert "'message' appears twice" in err.one_line()


def test_step_without_task_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "notask.yaml", """
        steps:
          - name: ok
            task: echo
          - name: lonely
            inputs:
              message: hi
    """)
    err = load_error(path)
    assert err.line == 4
    assert "step 'lonely' has no `task`" in err.one_line()


def test_unknown_task_type_suggests_the_closest(tmp_path: Path) -> None:
    # given a typo in a task type
    path = write(tmp_path, "task.yaml", """
        steps:
          - name: first
            task: echo
          - name: run_it
            task: shel
            inputs:
              command: "true"
    """)
    # when loaded through the engine (which knows the registry)
    with pytest.raises(TaskNotFoundError) as caught:
        load_workflow(path)
    err = caught.value
    # then the step, its line and the near task name are given
    assert isinstance(err, SpecError)
    assert err.line == 4
    assert "step 'run_it'" in err.one_line()
    assert "unknown task type 'shel'" in err.one_line()
    assert "did you mean 'shell'" in err.one_line()


def test_unknown_task_type_passes_the_structural_loader(tmp_path: Path) -> None:
    # the structure-only loader does not know the registry; engine.load does the check
    path = write(tmp_path, "task.yaml", """
        steps:
          - name: a
            task: no_such_task_anywhere
    """)
    assert load_workflow_file(path).steps[0].task == "no_such_task_anywhere"
    with pytest.raises(TaskNotFoundError):
        load_workflow(path)


def test_on_error_next_target_must_be_a_step(tmp_path: Path) -> None:
    path = write(tmp_path, "next.yaml", """
        steps:
          - name: a
            task: echo
          - name: b
            task: fail
            on_error:
              action: next
              next: cleanpu
          - name: cleanup
            task: echo
    """)
    err = load_error(path)
    assert err.line == 4
    assert "next target 'cleanpu' is not a step" in err.one_line()
    assert "did you mean 'cleanup'" in err.one_line()


def test_on_error_next_to_the_step_itself_is_refused(tmp_path: Path) -> None:
    # a step that jumps to itself on failure would run forever
    path = write(tmp_path, "selfnext.yaml", """
        steps:
          - name: a
            task: fail
            on_error: {action: next, next: a}
    """)
    err = load_error(path)
    assert err.line == 2
    assert "next target 'a' is the step itself" in err.one_line()


def test_on_error_next_back_to_an_earlier_step_is_refused(tmp_path: Path) -> None:
    # a jump back to an earlier step could run the same steps forever
    path = write(tmp_path, "backnext.yaml", """
        steps:
          - name: a
            task: echo
            inputs: {message: hi}
          - name: b
            task: fail
            on_error: {action: next, next: a}
    """)
    err = load_error(path)
    assert "next target 'a' comes before it" in err.one_line()


def test_depends_on_an_unknown_step(tmp_path: Path) -> None:
    path = write(tmp_path, "deps.yaml", """
        steps:
          - name: fetch
            task: echo
          - name: load
            task: echo
            depends_on: [fecth]
    """)
    err = load_error(path)
    assert err.line == 4
    assert "depends on unknown step 'fecth'" in err.one_line()
    assert "did you mean 'fetch'" in err.one_line()


def test_depends_on_itself(tmp_path: Path) -> None:
    path = write(tmp_path, "self.yaml", """
        steps:
          - name: a
            task: echo
            depends_on: a
    """)
    err = load_error(path)
    assert err.line == 2
    assert "'a' depends on itself" in err.one_line()


def test_depends_on_cycle_shows_the_chain(tmp_path: Path) -> None:
    # given a -> c -> b -> a
    path = write(tmp_path, "cycle.yaml", """
        steps:
          - name: a
            task: echo
            depends_on: c
          - name: b
            task: echo
            depends_on: a
          - name: c
            task: echo
            depends_on: b
    """)
    err = load_error(path)
    line = err.one_line()
    assert "depends_on cycle" in line
    chain = line.split("depends_on cycle: ")[1].split(" (")[0]
    names = chain.split(" -> ")
    # the chain starts and ends with the same step and holds all three
    assert names[0] == names[-1]
    assert set(names) == {"a", "b", "c"}
    assert len(names) == 4
    assert err.line in (2, 5, 8)
    assert err.file == str(path)


# --- imports ------------------------------------------------------------------------------


def test_import_cycle_names_the_chain(tmp_path: Path) -> None:
    # given a.yaml imports b.yaml, which imports a.yaml
    main = write(tmp_path, "a.yaml", """
        imports: [b.yaml]
        steps:
          - name: from_a
            task: echo
    """)
    write(tmp_path, "b.yaml", """
        imports: [a.yaml]
        steps:
          - name: from_b
            task: echo
    """)
    with pytest.raises(SpecError) as caught:
        load_workflow(main)
    line = caught.value.one_line()
    assert "import cycle: a.yaml -> b.yaml -> a.yaml" in line
    assert caught.value.line == 1
    assert "b.yaml:1:" in line  # the file holding the import that closes the cycle


def test_imported_steps_come_first_and_main_params_win(tmp_path: Path) -> None:
    # given a main file importing common.yaml, which imports base.yaml
    write(tmp_path, "base.yaml", """
        params:
          region: eu
          level: 1
        steps:
          - name: base_step
            task: echo
            inputs: {message: base}
    """)
    (tmp_path / "lib").mkdir()
    write(tmp_path, "lib/common.yaml", """
        imports: [../base.yaml]
        params:
          level: 2
          color: blue
        steps:
          - name: common_step
            task: echo
            inputs: {message: common}
    """)
    main = write(tmp_path, "main.yaml", """
        imports:
          - lib/common.yaml
        params:
          color: red
        steps:
          - name: main_step
            task: echo
            inputs: {message: main}
    """)
    # when loaded
    workflow = load_workflow(main)
    # then imported steps precede the main ones, imports of imports first
    assert workflow.step_names == ["base_step", "common_step", "main_step"]
    # and params merge: importer overrides imported, main overrides all
    assert {k: p.default for k, p in workflow.params.items()} == {
        "region": "eu", "level": 2, "color": "red",
    }


def test_missing_imported_file_is_a_load_error(tmp_path: Path) -> None:
    main = write(tmp_path, "main.yaml", """
        name: m
        imports: [nowhere.yaml]
        steps:
          - name: a
            task: echo
    """)
    err = load_error(main)
    assert err.line == 2
    assert "imported file not found: nowhere.yaml" in err.one_line()


def test_duplicate_step_between_import_and_main(tmp_path: Path) -> None:
    write(tmp_path, "lib.yaml", """
        steps:
          - name: shared
            task: echo
    """)
    main = write(tmp_path, "main.yaml", """
        imports: [lib.yaml]
        steps:
          - name: shared
            task: noop
    """)
    err = load_error(main)
    assert "'shared' is used twice" in err.one_line()


# --- flows --------------------------------------------------------------------------------


def test_flows_in_list_of_maps_form(tmp_path: Path) -> None:
    path = write(tmp_path, "flows.yaml", """
        flows:
          default: quick
          definitions:
            - quick: [a, c]
            - full: [a, b, c]
        steps:
          - name: a
            task: echo
          - name: b
            task: echo
          - name: c
            task: echo
    """)
    workflow = load_workflow(path)
    assert workflow.flows is not None
    assert workflow.flows.default == "quick"
    assert workflow.flows.definitions == {"quick": ["a", "c"], "full": ["a", "b", "c"]}


def test_flow_naming_an_unknown_step(tmp_path: Path) -> None:
    path = write(tmp_path, "flows.yaml", """
        name: f
        flows:
          definitions:
            - main: [a, bb]
        steps:
          - name: a
            task: echo
          - name: b
            task: echo
    """)
    err = load_error(path)
    assert err.line == 2
    assert "flow 'main' names unknown step 'bb'" in err.one_line()
    assert "did you mean 'b'" in err.one_line()


def test_flow_default_that_is_not_defined(tmp_path: Path) -> None:
    path = write(tmp_path, "flows.yaml", """
        flows:
          default: mian
          definitions:
            - main: [a]
        steps:
          - name: a
            task: echo
    """)
    err = load_error(path)
    assert err.line == 1
    assert "flows.default 'mian' is not a defined flow" in err.one_line()
    assert "did you mean 'main'" in err.one_line()


# --- accepted forms -----------------------------------------------------------------------


def test_steps_as_a_mapping_keep_file_order_and_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "map.yaml", """
        steps:
          zeta:
            task: echo
            inputs: {message: z}
          alpha:
            task: echo
            inputs: {message: a}
    """)
    workflow = load_workflow(path)
    assert workflow.step_names == ["zeta", "alpha"]
    assert workflow.step("alpha").inputs == {"message": "a"}
    assert workflow.line_of("alpha") == 5
    assert workflow.name == "map"  # the file's stem when `name` is absent


def test_step_params_is_an_alias_of_inputs(tmp_path: Path) -> None:
    path = write(tmp_path, "alias.yaml", """
        steps:
          - name: a
            task: echo
            params:
              message: hello
    """)
    assert load_workflow(path).step("a").inputs == {"message": "hello"}


def test_step_with_both_params_and_inputs_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "both.yaml", """
        steps:
          - name: a
            task: echo
            inputs: {message: x}
            params: {message: y}
    """)
    err = load_error(path)
    assert err.line == 5
    assert "both `inputs` and `params`" in err.one_line()


def test_progress_keys_are_lifted_out_of_inputs(tmp_path: Path) -> None:
    # given the seed document's habit of writing progress keys under inputs/params
    path = write(tmp_path, "progress.yaml", """
        steps:
          - name: a
            task: echo
            inputs:
              message: hi
              progress_update: true
              progress_interval: 2.5
          - name: b
            task: echo
            params:
              message: there
              progress_interval: 7
    """)
    workflow = load_workflow(path)
    a, b = workflow.step("a"), workflow.step("b")
    # then the step gets them, and the task never sees them
    assert a.inputs == {"message": "hi"}
    assert a.progress_update is True and a.progress_interval == 2.5
    assert b.inputs == {"message": "there"}
    assert b.progress_update is False and b.progress_interval == 7


def test_retry_block_and_on_error_retry_together_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "retry.yaml", """
        steps:
          - name: a
            task: echo
          - name: b
            task: echo
            retry:
              max_attempts: 2
            on_error:
              action: retry
              retry: 2
    """)
    err = load_error(path)
    assert err.line == 6
    assert "step 'b' has both a `retry` block and `on_error.retry`" in err.one_line()


def test_retry_block_with_on_error_action_alone_is_fine(tmp_path: Path) -> None:
    path = write(tmp_path, "retry_ok.yaml", """
        steps:
          - name: a
            task: echo
            retry: {max_attempts: 2, delay: 0}
            on_error: continue
    """)
    step = load_workflow(path).step("a")
    assert step.retry is not None and step.retry.max_attempts == 2
    assert step.on_error is not None and step.on_error.action == "continue"


def test_template_syntax_error_is_found_at_load_with_the_step_name(tmp_path: Path) -> None:
    path = write(tmp_path, "tmpl.yaml", """
        steps:
          - name: ok
            task: echo
            inputs: {message: "{{ args.x }}"}
          - name: broken
            task: echo
            inputs:
              message: "value: {{ args.x + }}"
    """)
    err = load_error(path)
    assert err.line == 5
    line = err.one_line()
    assert "step 'broken'" in line
    assert "template syntax error" in line


def test_condition_syntax_error_is_found_at_load(tmp_path: Path) -> None:
    path = write(tmp_path, "cond.yaml", """
        steps:
          - name: gated
            task: echo
            condition: "{{ args.x == }}"
    """)
    err = load_error(path)
    assert "step 'gated'" in err.one_line()
    assert "template syntax error" in err.one_line()


def test_undefined_name_is_not_a_load_error(tmp_path: Path) -> None:
    # an undefined name fails at run time (so retry/on_error apply), never at load
    path = write(tmp_path, "undef.yaml", """
        steps:
          - name: a
            task: echo
            inputs: {message: "{{ args.not_declared.deeper }}"}
    """)
    assert load_workflow(path).step_names == ["a"]


def test_missing_file_and_empty_file_are_spec_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="workflow file not found"):
        load_workflow(tmp_path / "absent.yaml")
    empty = write(tmp_path, "empty.yaml", "\n")
    with pytest.raises(SpecError, match="the file is empty"):
        load_workflow(empty)
    listing = write(tmp_path, "list.yaml", "- a\n- b\n")
    err = load_error(listing)
    assert err.line == 1
    assert "must be a mapping" in err.one_line()
