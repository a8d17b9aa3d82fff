/*
 * gendoc: the configuration reference, generated from the table of settings.
 *
 *   gendoc markdown doc/config.md.in                > doc/config.md
 *   gendoc man      doc/pgwing.5.in doc/config.md.in > doc/pgwing.5
 *
 * A template is copied as it is but for two lines: "@SETTINGS@" becomes the
 * table of settings, and "@REFERENCE@" (the man page's template) becomes the
 * Markdown reference converted to roff. The converter knows what
 * doc/config.md.in uses: headings, paragraphs, "- " lists, ``` blocks, tables,
 * `code`, *emphasis*, **strong** and [links](...). `make docs` runs it, and
 * `make check-docs` fails when the committed files differ from its output.
 */
#include "pgwing/settings.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SETTINGS_MARK  "@SETTINGS@"
#define REFERENCE_MARK "@REFERENCE@"

static void usage(void)
{
	fputs("usage: gendoc markdown CONFIG_MD_TEMPLATE\n"
	      "       gendoc man MAN_TEMPLATE CONFIG_MD_TEMPLATE\n",
	      stderr);
	exit(2);
}

static FILE *open_or_die(const char *path)
{
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		perror(path);
		exit(1);
	}
	return f;
}

/* A line without its newline, or NULL at the end; *buf and *cap as getline's. */
static char *next_line(FILE *f, char **buf, size_t *cap)
{
	if (getline(buf, cap, f) == -1)
		return NULL;
	(*buf)[strcspn(*buf, "\n")] = '\0';
	return *buf;
}

static void markdown_settings(FILE *out)
{
	size_t n;
	const struct setting *settings = config_settings(&n);

	fputs("| Name | Type | Default | Allowed | Reload | Description |\n"
	      "|---|---|---|---|---|---|\n",
	      out);
	for (size_t i = 0; i < n; i++) {
		const struct setting *s = &settings[i];
		char range[256];

		config_format_range(s, range, sizeof(range));
		fprintf(out, "| `%s` | %s | ", s->name, settings_type_name(s->type));
		if (s->default_value[0] == '\0')
			fputs("*empty*", out);
		else
			fprintf(out, "`%s`", s->default_value);
		fprintf(out, " | %s | %s | %s |\n", range[0] != '\0' ? range : "any",
			s->is_reloadable ? "yes" : "no", s->doc);
	}
}

/* Fonts open across the lines of one block (a `code` span may wrap). */
struct inline_state {
	bool is_code;
	bool is_strong;
	bool is_emphasis;
};

static const char *font_of(const struct inline_state *st)
{
	if (st->is_code || st->is_strong)
		return "\\fB";
	return st->is_emphasis ? "\\fI" : "\\fR";
}

static void put_escaped(FILE *out, char c)
{
	if (c == '\\')
		fputs("\\e", out);
	else
		fputc(c, out);
}

/* [text](target): the text alone (the man page has no anchors to go to). */
static const char *skip_link(const char *p, const char **text_end)
{
	const char *close = strchr(p, ']');

	if (close == NULL || close[1] != '(' || strchr(close, ')') == NULL)
		return NULL;
	*text_end = close;
	return strchr(close, ')') + 1;
}

/* Markdown inline text to roff, without the line's leading-dot guard. */
static void roff_inline(FILE *out, const char *text, struct inline_state *st)
{
	for (const char *p = text; *p != '\0'; p++) {
		const char *text_end, *after;

		if (*p == '`') {
			st->is_code = !st->is_code;
			fputs(font_of(st), out);
		} else if (st->is_code) {
			put_escaped(out, *p);
		} else if (p[0] == '*' && p[1] == '*') {
			st->is_strong = !st->is_strong;
			fputs(font_of(st), out);
			p++;
		} else if (*p == '*' &&
			   (st->is_emphasis || (p[1] != '\0' && !isspace((unsigned char)p[1]) &&
						strchr(p + 1, '*') != NULL))) {
			st->is_emphasis = !st->is_emphasis;
			fputs(font_of(st), out);
		} else if (*p == '[' && (after = skip_link(p + 1, &text_end)) != NULL) {
			for (const char *t = p + 1; t < text_end; t++)
				put_escaped(out, *t);
			p = after - 1;
		} else {
			put_escaped(out, *p);
		}
	}
}

/*
 * One line of roff text: a leading . or ' would be read as a request, and
 * other characters than ASCII go as \[uXXXX], which troff reads without preconv.
 */
static void roff_line(FILE *out, const char *line)
{
	const unsigned char *c = (const unsigned char *)line;

	if (*c == '.' || *c == '\'')
		fputs("\\&", out);
	while (*c != '\0') {
		int extra = *c >= 0xf0 ? 3 : *c >= 0xe0 ? 2 : *c >= 0xc0 ? 1 : 0;
		unsigned code = *c >= 0x80 ? *c & (0x3f >> extra) : *c;

		for (c++; extra > 0 && (*c & 0xc0) == 0x80; extra--, c++)
			code = code << 6 | (*c & 0x3f);
		if (code < 0x80)
			fputc((int)code, out);
		else
			fprintf(out, "\\[u%04X]", code);
	}
	fputc('\n', out);
}

/* One line of Markdown text as roff; st NULL: a line of a ``` block, taken as it is. */
static void roff_text_line(FILE *out, const char *text, struct inline_state *st)
{
	char *line = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&line, &len);

	if (st != NULL)
		roff_inline(mem, text, st);
	else
		for (const char *c = text; *c != '\0'; c++)
			put_escaped(mem, *c);
	fclose(mem);
	roff_line(out, line);
	free(line);
}

static void man_settings(FILE *out)
{
	size_t n;
	const struct setting *settings = config_settings(&n);
	struct inline_state st = {0};

	for (size_t i = 0; i < n; i++) {
		const struct setting *s = &settings[i];
		char range[256];

		config_format_range(s, range, sizeof(range));
		fprintf(out, ".TP\n.BR %s \" (%s)\"\n", s->name, settings_type_name(s->type));
		roff_text_line(out, s->doc, &st);
		fputs(".br\nDefault: ", out);
		if (s->default_value[0] == '\0') {
			fputs("\\fIempty\\fR", out);
		} else {
			fputs("\\fB", out);
			for (const char *c = s->default_value; *c != '\0'; c++)
				put_escaped(out, *c);
			fputs("\\fR", out);
		}
		fprintf(out, "; allowed: %s; %s.\n", range[0] != '\0' ? range : "any",
			s->is_reloadable ? "changes on reload" : "needs a restart");
	}
}

/* The cells of a table row "| a | b |", trimmed, into cells (at most max). */
static int split_row(char *row, char **cells, int max)
{
	int n = 0;
	bool is_code = false;
	char *start = strchr(row, '|') + 1;

	for (char *p = start; *p != '\0' && n < max; p++) {
		if (*p == '`')
			is_code = !is_code;
		if (*p != '|' || is_code)
			continue;
		*p = '\0';
		while (isspace((unsigned char)*start))
			start++;
		for (char *end = p; end > start && isspace((unsigned char)end[-1]);)
			*--end = '\0';
		cells[n++] = start;
		start = p + 1;
	}
	return n;
}

#define MAX_COLUMNS 8

/* A table as a tagged list: the first cell is the tag, the others "Header: cell". */
struct table {
	char *header[MAX_COLUMNS];
	char *header_line;
	int columns;
	int row; /* rows read, the header and the |---| line included */
};

static void man_table_row(FILE *out, struct table *t, char *line)
{
	char *cells[MAX_COLUMNS];
	struct inline_state st = {0};
	int n;

	if (t->row++ == 0) {
		t->header_line = strdup(line);
		t->columns = split_row(t->header_line, t->header, MAX_COLUMNS);
		return;
	}
	if (t->row == 2)
		return; /* |---|---| */
	n = split_row(line, cells, MAX_COLUMNS);
	fputs(".TP\n", out);
	roff_text_line(out, n > 0 ? cells[0] : "", &st);
	for (int i = 1; i < n; i++) {
		if (i > 1)
			fputs(".br\n", out);
		if (t->columns == 2) {
			roff_text_line(out, cells[i], &st);
		} else {
			char *item;

			if (asprintf(&item, "%s: %s", i < t->columns ? t->header[i] : "",
				     cells[i]) < 0)
				exit(1);
			roff_text_line(out, item, &st);
			free(item);
		}
	}
}

static void man_table_end(struct table *t)
{
	free(t->header_line);
	*t = (struct table){0};
}

/* A heading's text without Markdown's marks, quoted for .SH and .SS. */
static void man_heading(FILE *out, const char *request, const char *text)
{
	fprintf(out, "%s \"", request);
	for (const char *c = text; *c != '\0'; c++)
		if (*c != '`' && *c != '"')
			put_escaped(out, *c);
	fputs("\"\n", out);
}

/* doc/config.md.in as roff: the title line becomes DESCRIPTION, ## a section. */
static void man_reference(FILE *out, const char *path)
{
	FILE *in = open_or_die(path);
	char *buf = NULL, *line;
	size_t cap = 0;
	bool is_fence = false, is_paragraph_due = false;
	struct inline_state st = {0};
	struct table table = {0};

	while ((line = next_line(in, &buf, &cap)) != NULL) {
		if (is_fence) {
			if (strncmp(line, "```", 3) == 0) {
				fputs(".fi\n.RE\n", out);
				is_fence = false;
			} else {
				roff_text_line(out, line, NULL);
			}
		} else if (strncmp(line, "```", 3) == 0) {
			fputs(is_paragraph_due ? ".PP\n.RS 4\n.nf\n" : ".RS 4\n.nf\n", out);
			is_fence = true;
			is_paragraph_due = false;
		} else if (line[0] == '\0') {
			man_table_end(&table);
			st = (struct inline_state){0};
			is_paragraph_due = true;
		} else if (strncmp(line, "# ", 2) == 0) {
			fputs(".SH DESCRIPTION\n", out);
			is_paragraph_due = false;
		} else if (strncmp(line, "## ", 3) == 0 || strncmp(line, "### ", 4) == 0) {
			bool is_section = line[2] == ' ';

			man_heading(out, is_section ? ".SH" : ".SS", line + (is_section ? 3 : 4));
			is_paragraph_due = false;
		} else if (strcmp(line, SETTINGS_MARK) == 0) {
			man_settings(out);
			is_paragraph_due = true;
		} else if (line[0] == '|') {
			man_table_row(out, &table, line);
		} else {
			const char *text = line;

			if (strncmp(line, "- ", 2) == 0) {
				st = (struct inline_state){0};
				fputs(".IP \\(bu 2\n", out);
				text = line + 2;
			} else if (is_paragraph_due) {
				fputs(".PP\n", out);
			}
			is_paragraph_due = false;
			while (isspace((unsigned char)*text))
				text++;
			roff_text_line(out, text, &st);
		}
	}
	man_table_end(&table);
	free(buf);
	fclose(in);
}

/* Copy the template, with the marks replaced. */
static void expand(FILE *out, const char *template, bool is_man, const char *reference)
{
	FILE *in = open_or_die(template);
	char *buf = NULL, *line;
	size_t cap = 0;

	while ((line = next_line(in, &buf, &cap)) != NULL) {
		if (strcmp(line, SETTINGS_MARK) == 0 && !is_man)
			markdown_settings(out);
		else if (strcmp(line, REFERENCE_MARK) == 0 && is_man)
			man_reference(out, reference);
		else
			fprintf(out, "%s\n", line);
	}
	free(buf);
	fclose(in);
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "markdown") == 0)
		expand(stdout, argv[2], false, NULL);
	else if (argc == 4 && strcmp(argv[1], "man") == 0)
		expand(stdout, argv[2], true, argv[3]);
	else
		usage();
	return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
}
