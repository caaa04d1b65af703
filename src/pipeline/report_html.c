/* report_html.c — placeholder, replaced below. */
#include "core/status.h"
#include "pipeline/validate.h"

ferry_status fy_report_html(const ferry_validation *v, FILE *f)
{
    (void)v;
    fprintf(f, "<!doctype html><title>ferry validate</title>\n");
    return FERRY_OK;
}
