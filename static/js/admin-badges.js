'use strict';
// The award form's student search (scoring.badge_admin.StudentSearchWidget): Django admin's
// select2 widget, given what a screen reader needs and select2 leaves out. The combobox is
// named by its field's label and the chosen student, says whether it is open and which
// list it controls; the search box in the dropdown has a name too. Loaded after the
// form's media, so its ready handler runs after the widgets are built (autocomplete.js).
{
    const $ = django.jQuery;

    function comboboxOf(select) {
        return $(select).next('.select2-container').find('.select2-selection[role=combobox]').get(0);
    }

    function describe(select) {
        const combobox = comboboxOf(select);
        const label = document.querySelector(`label[for="${select.id}"]`);
        if (!combobox || !label) {
            return;
        }
        label.id = label.id || `${select.id}_label`;
        const rendered = combobox.querySelector('.select2-selection__rendered');
        if (rendered) {
            // the chosen student, shown: part of the combobox's name, not an input of its own
            rendered.removeAttribute('role');
            rendered.removeAttribute('aria-readonly');
        }
        combobox.setAttribute('aria-labelledby', [label.id, rendered && rendered.id].filter(Boolean).join(' '));
        if (!combobox.hasAttribute('aria-expanded')) {
            combobox.setAttribute('aria-expanded', 'false');
        }
        const help = document.getElementById(`${select.id}_helptext`);
        if (help) {
            combobox.setAttribute('aria-describedby', help.id);
        }
    }

    $(document).on('select2:open', 'select.admin-autocomplete', function() {
        const combobox = comboboxOf(this);
        const search = document.querySelector('.select2-container--open .select2-search__field');
        if (search) {
            search.setAttribute('aria-label', 'Search by name or e-mail');
        }
        if (combobox && combobox.getAttribute('aria-owns')) {
            combobox.setAttribute('aria-controls', combobox.getAttribute('aria-owns'));
        }
    });

    $(function() {
        $('select.admin-autocomplete').each(function() {
            describe(this);
        });
    });
}
