from challenges.flags import check_flag, make_flag_hash
from challenges.models import Project


def test_a_flag_is_stored_as_a_salted_digest_never_in_clear():
    project = Project()
    project.set_flag("FLAG{secret}")

    assert project.has_flag
    assert "secret" not in project.flag_hash
    assert project.flag_hash.startswith("sha256$")


def test_the_right_flag_matches_and_surrounding_spaces_do_not_matter():
    project = Project()
    project.set_flag("FLAG{secret}")

    assert project.check_flag("FLAG{secret}")
    assert project.check_flag("  FLAG{secret}\n")
    assert not project.check_flag("FLAG{Secret}")
    assert not project.check_flag("")


def test_the_same_flag_gets_a_different_digest_each_time():
    assert make_flag_hash("FLAG{x}") != make_flag_hash("FLAG{x}")


def test_a_blank_flag_removes_it_and_nothing_matches():
    project = Project()
    project.set_flag("FLAG{x}")
    project.set_flag("  ")

    assert not project.has_flag
    assert not project.check_flag("")


def test_a_malformed_digest_matches_nothing():
    assert not check_flag("FLAG{x}", "garbage")
    assert not check_flag("FLAG{x}", "md5$salt$abc")
